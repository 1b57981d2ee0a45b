-- name: example_answers
-- answers: Every answer to one golden-set example (paired replay or shadow traffic): which arm answered, how long it took, and how its evaluations judged it, side by side.
-- params: example_id (text)
SELECT
    coalesce(adapter_name, '(base) ' || coalesce(base_model_name, model)) AS served_by,
    adapter_id,
    variant,
    trace_id,
    start_time,
    duration_ns / 1e6 AS duration_ms,
    status_code,
    finish_reason,
    evals,
    evals_passed,
    evals_failed
FROM generations
WHERE example_id = $example_id
ORDER BY variant, served_by, start_time
