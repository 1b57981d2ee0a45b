-- name: ok_spans_failed_eval
-- answers: Traces where every span succeeded (no ERROR status anywhere) but an evaluation failed: quiet quality failures that no error dashboard shows.
-- params: adapter (text, optional), since (timestamp, optional), until (timestamp, optional), limit (integer, default 50)
WITH failed AS (
    SELECT trace_id, min(time) AS first_failure, count(*) AS failed_evals, string_agg(DISTINCT name, ',' ORDER BY name) AS eval_names
    FROM evals
    WHERE NOT passed
      AND ($adapter::VARCHAR IS NULL OR adapter_name = $adapter::VARCHAR)
      AND time >= coalesce($since::TIMESTAMP, '-infinity'::TIMESTAMP)
      AND time < coalesce($until::TIMESTAMP, 'infinity'::TIMESTAMP)
    GROUP BY trace_id
),
errored AS (
    SELECT DISTINCT trace_id FROM spans WHERE status_code = 'ERROR' AND trace_id IN (SELECT trace_id FROM failed)
)
SELECT
    f.trace_id,
    f.first_failure,
    f.failed_evals,
    f.eval_names,
    g.served_by,
    g.adapter_id,
    g.cohort
FROM failed AS f
LEFT JOIN (
    SELECT trace_id, any_value(coalesce(adapter_name, '(base) ' || coalesce(base_model_name, model))) AS served_by, any_value(adapter_id) AS adapter_id, any_value(cohort) AS cohort
    FROM generations
    WHERE trace_id IN (SELECT trace_id FROM failed)
    GROUP BY trace_id
) AS g ON g.trace_id = f.trace_id
WHERE f.trace_id NOT IN (SELECT trace_id FROM errored)
ORDER BY f.first_failure DESC, f.trace_id
LIMIT $limit
