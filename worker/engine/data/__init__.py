"""Preference rows → token batches: loading and tokenizing pairs, batches and the sampler, the
constructed tasks, the tokenizer."""
