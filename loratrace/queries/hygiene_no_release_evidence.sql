-- name: hygiene_no_release_evidence
-- answers: Which adapter ids served production traffic before any golden-set replay of that id was recorded?
-- params: since (TIMESTAMP UTC or NULL for all), until (TIMESTAMP UTC or NULL for all)
-- Generations are read from `spans` by operation (what the `generations` view selects, without the view's
-- evaluation counts, which cost four times the query's own work on a large store).
-- Production traffic is looked at in the time range; replay (generations with example_id) over the whole store.
WITH identified AS (
    SELECT adapter_name, adapter_id, example_id, start_time
    FROM spans
    WHERE operation_name IN ('text_completion', 'chat', 'generate_content') AND adapter_id IS NOT NULL
),
production AS (
    SELECT adapter_name, adapter_id, start_time
    FROM identified
    WHERE example_id IS NULL
      AND (CAST($since AS TIMESTAMP) IS NULL OR start_time >= CAST($since AS TIMESTAMP))
      AND (CAST($until AS TIMESTAMP) IS NULL OR start_time < CAST($until AS TIMESTAMP))
),
replay AS (
    SELECT adapter_id, min(start_time) AS first_replay, count(DISTINCT example_id) AS replayed_examples
    FROM identified
    WHERE example_id IS NOT NULL
    GROUP BY 1
)
SELECT p.adapter_name,
       p.adapter_id,
       min(p.start_time) AS first_production,
       any_value(r.first_replay) AS first_replay,
       coalesce(any_value(r.replayed_examples), 0) AS replayed_examples,
       count(*) FILTER (WHERE r.first_replay IS NULL OR p.start_time < r.first_replay) AS generations_before_evidence
FROM production AS p
LEFT JOIN replay AS r USING (adapter_id)
GROUP BY p.adapter_name, p.adapter_id
HAVING count(*) FILTER (WHERE r.first_replay IS NULL OR p.start_time < r.first_replay) > 0
ORDER BY p.adapter_name, first_production
