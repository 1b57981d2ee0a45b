"""Golden-set replay: the same examples through the base model and each adapter, evaluated, paired by example id.

\b
    from loratrace.replay import GenerationSettings, run_replay
    summary = run_replay("golden.jsonl", base="./tiny-llama", adapters={"a1": "./adapters/a1"},
                         generation=GenerationSettings(max_new_tokens=32), engine="vllm", store="./traces")

Needs the ``replay`` extra (``jsonschema``, ``tqdm``) and an engine extra (``transformers`` or ``vllm``).
The dataset format is in ``docs/replay.md``.
"""

from loratrace.replay.dataset import Dataset, Example, Problem, read_dataset
from loratrace.replay.engines import GenerationSettings
from loratrace.replay.runner import ReplayError, ReplaySummary, run_replay

__all__ = [
    "Dataset",
    "Example",
    "GenerationSettings",
    "Problem",
    "ReplayError",
    "ReplaySummary",
    "read_dataset",
    "run_replay",
]
