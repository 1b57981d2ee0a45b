-- name: error_types_by_adapter
-- answers: Which errors each adapter (or the base model) raised in a window, how often, and their share of its generations: is a failure specific to one adapter?
-- params: since (timestamp, optional), until (timestamp, optional)
WITH windowed AS (
    SELECT coalesce(adapter_name, '(base) ' || coalesce(base_model_name, model)) AS served_by, status_code, error_type
    FROM generations
    WHERE start_time >= coalesce($since::TIMESTAMP, '-infinity'::TIMESTAMP)
      AND start_time < coalesce($until::TIMESTAMP, 'infinity'::TIMESTAMP)
),
totals AS (
    SELECT served_by, count(*) AS generations FROM windowed GROUP BY served_by
)
SELECT
    w.served_by,
    coalesce(w.error_type, '(none given)') AS error_type,
    count(*) AS errors,
    any_value(t.generations) AS generations,
    count(*) / any_value(t.generations) AS share
FROM windowed AS w
JOIN totals AS t USING (served_by)
WHERE w.status_code = 'ERROR'
GROUP BY ALL
ORDER BY errors DESC, w.served_by, error_type
