-- name: eval_failures_by_cohort
-- answers: Evaluation failures per cohort and adapter (or base model) in a window: how many answers were judged, how many failed, and the failure rate, worst first.
-- params: eval (text, optional), since (timestamp, optional), until (timestamp, optional)
SELECT
    cohort,
    coalesce(adapter_name, '(base) ' || coalesce(base_model_name, model)) AS served_by,
    name AS eval_name,
    count(*) AS evaluated,
    count(*) FILTER (WHERE NOT passed) AS failed,
    count(*) FILTER (WHERE NOT passed) / count(*) AS fail_rate
FROM evals
WHERE passed IS NOT NULL
  AND ($eval::VARCHAR IS NULL OR name = $eval::VARCHAR)
  AND time >= coalesce($since::TIMESTAMP, '-infinity'::TIMESTAMP)
  AND time < coalesce($until::TIMESTAMP, 'infinity'::TIMESTAMP)
GROUP BY ALL
ORDER BY fail_rate DESC, cohort, served_by, eval_name
