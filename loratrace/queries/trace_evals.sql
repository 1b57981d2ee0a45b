-- name: trace_evals
-- answers: The evaluation results recorded for trace X (name, score, label, pass or fail, explanation) and which adapter they judged.
-- params: trace_id (text)
SELECT
    span_id,
    time,
    name AS eval_name,
    score,
    label,
    passed,
    explanation,
    adapter_name,
    adapter_id,
    cohort,
    variant
FROM evals
WHERE trace_id = lower($trace_id)
ORDER BY time_unix_nano, span_id, name
