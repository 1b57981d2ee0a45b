-- name: fallback_reasons
-- answers: Why requests fell back in a window, per adapter: each fallback reason, its count and its share of the adapter's generations.
-- params: since (timestamp, optional), until (timestamp, optional)
WITH windowed AS (
    SELECT coalesce(adapter_name, '(base) ' || coalesce(base_model_name, model)) AS served_by, fallback, fallback_reason
    FROM generations
    WHERE start_time >= coalesce($since::TIMESTAMP, '-infinity'::TIMESTAMP)
      AND start_time < coalesce($until::TIMESTAMP, 'infinity'::TIMESTAMP)
),
totals AS (
    SELECT served_by, count(*) AS generations FROM windowed GROUP BY served_by
)
SELECT
    w.served_by,
    coalesce(w.fallback_reason, '(none given)') AS fallback_reason,
    count(*) AS fallbacks,
    any_value(t.generations) AS generations,
    count(*) / any_value(t.generations) AS share
FROM windowed AS w
JOIN totals AS t USING (served_by)
WHERE w.fallback
GROUP BY ALL
ORDER BY fallbacks DESC, w.served_by, fallback_reason
