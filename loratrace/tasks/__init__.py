"""TaskCompletion on agent traces: workflows per route, a verdict per trace, written back as evaluations.

\b
    from loratrace.tasks import evaluate_tasks, load_workflows
    results = evaluate_tasks("./traces", load_workflows("workflows.toml"))
"""

from loratrace.tasks.evaluate import TaskResult, evaluate_tasks, iter_task_results, judge
from loratrace.tasks.workflows import Workflow, load_workflows

__all__ = ["TaskResult", "Workflow", "evaluate_tasks", "iter_task_results", "judge", "load_workflows"]
