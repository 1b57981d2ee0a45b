-- name: hygiene_silent_swaps
-- answers: Which adapter names started serving new weights (a new adapter id under the same name) with no golden-set replay of the new id?
-- params: since (TIMESTAMP UTC or NULL for all), until (TIMESTAMP UTC or NULL for all)
-- Generations are read from `spans` by operation (what the `generations` view selects, without the view's
-- evaluation counts, which cost four times the query's own work on a large store).
-- The swap (the new id's first generation) must fall in the time range; the name's history is read over the whole store.
WITH ids AS (
    SELECT adapter_name, adapter_id,
           min(start_time) AS first_seen,
           count(*) FILTER (WHERE example_id IS NULL) AS production_generations,
           count(DISTINCT example_id) AS replayed_examples
    FROM spans
    WHERE operation_name IN ('text_completion', 'chat', 'generate_content')
      AND adapter_name IS NOT NULL AND adapter_id IS NOT NULL
    GROUP BY ALL
),
ranked AS (
    SELECT *,
           row_number() OVER (PARTITION BY adapter_name ORDER BY first_seen, adapter_id) AS nth,
           lag(adapter_id) OVER (PARTITION BY adapter_name ORDER BY first_seen, adapter_id) AS previous_id
    FROM ids
)
SELECT adapter_name, adapter_id, previous_id, first_seen, production_generations
FROM ranked
WHERE nth > 1 AND replayed_examples = 0 AND production_generations > 0
  AND (CAST($since AS TIMESTAMP) IS NULL OR first_seen >= CAST($since AS TIMESTAMP))
  AND (CAST($until AS TIMESTAMP) IS NULL OR first_seen < CAST($until AS TIMESTAMP))
ORDER BY adapter_name, first_seen
