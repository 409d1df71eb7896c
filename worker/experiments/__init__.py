"""An experiment preset → a group of runs → the summary next to the paper's (runner, stages, SFT
warm-up, scenarios, statistics, report, figure); ``python -m worker.experiments GROUP_ID`` runs one."""
