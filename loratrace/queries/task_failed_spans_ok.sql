-- name: task_failed_spans_ok
-- answers: Which agent traces failed their task-completion check although every span in them succeeded?
-- params: since (TIMESTAMP UTC or NULL for all), until (TIMESTAMP UTC or NULL for all)
-- The verdicts are the task_completion evaluations `loratrace evaluate tasks` writes; evaluation and feedback
-- spans are not steps of the task and are left out of "every span".
WITH failed AS (
    SELECT trace_id,
           any_value(label) AS label,
           any_value(explanation) AS explanation,
           any_value(adapter_name) AS adapter_name,
           any_value(route_name) AS route_name
    FROM evals
    WHERE name = 'task_completion' AND NOT passed
    GROUP BY trace_id
),
steps AS (
    SELECT trace_id,
           count(*) AS spans,
           min(start_time) AS started,
           count(*) FILTER (WHERE status_code = 'ERROR') AS failed_spans
    FROM spans
    WHERE operation_name IS DISTINCT FROM 'evaluation' AND name <> 'loratrace.feedback'
    GROUP BY trace_id
)
SELECT f.trace_id, s.started, f.route_name, f.adapter_name, f.label, f.explanation, s.spans
FROM failed AS f
JOIN steps AS s USING (trace_id)
WHERE s.failed_spans = 0
  AND (CAST($since AS TIMESTAMP) IS NULL OR s.started >= CAST($since AS TIMESTAMP))
  AND (CAST($until AS TIMESTAMP) IS NULL OR s.started < CAST($until AS TIMESTAMP))
ORDER BY s.started, f.trace_id
