"""The policy and its reference: loading (tiny, pretrained, GGUF), model families, scoring, the
shared-prompt batch, the chunked LM head and the lean GPT-NeoX forward."""
