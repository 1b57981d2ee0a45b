-- name: hygiene_confounded_changes
-- answers: On which routes did a new adapter id arrive within one window of a new quantization, prompt version or base model, so that a regression there has no clean owner?
-- params: since (TIMESTAMP UTC or NULL for all), until (TIMESTAMP UTC or NULL for all), window_seconds (INTEGER: how close two changes must be to count as one)
-- Generations are read from `spans` by operation (what the `generations` view selects, without the view's
-- evaluation counts, which cost four times the query's own work on a large store).
-- A change is a value first seen on the route at least one window after the route's first generation (the values of
-- the first window are the starting state). Golden-set replay (example_id set) is not production and is left out.
WITH g AS (
    SELECT route_name, start_time, adapter_id, prompt_version, base_model_name,
           coalesce(model_quantization_method || coalesce('/' || model_quantization_bits, ''), 'none') AS quantization
    FROM spans
    WHERE operation_name IN ('text_completion', 'chat', 'generate_content')
      AND route_name IS NOT NULL AND example_id IS NULL
      AND (CAST($since AS TIMESTAMP) IS NULL OR start_time >= CAST($since AS TIMESTAMP))
      AND (CAST($until AS TIMESTAMP) IS NULL OR start_time < CAST($until AS TIMESTAMP))
),
firsts AS (
    SELECT route_name, 'adapter_id' AS dimension, adapter_id AS value, min(start_time) AS first_seen
    FROM g WHERE adapter_id IS NOT NULL GROUP BY ALL
    UNION ALL SELECT route_name, 'quantization', quantization, min(start_time) FROM g GROUP BY ALL
    UNION ALL SELECT route_name, 'prompt_version', prompt_version, min(start_time)
    FROM g WHERE prompt_version IS NOT NULL GROUP BY ALL
    UNION ALL SELECT route_name, 'base_model', base_model_name, min(start_time)
    FROM g WHERE base_model_name IS NOT NULL GROUP BY ALL
),
changes AS (
    SELECT f.*
    FROM firsts AS f
    JOIN (SELECT route_name, min(start_time) AS route_start FROM g GROUP BY 1) AS r USING (route_name)
    WHERE f.first_seen >= r.route_start + to_seconds($window_seconds)
)
SELECT a.route_name,
       a.value AS adapter_id,
       a.first_seen AS adapter_first_seen,
       list(DISTINCT o.dimension ORDER BY o.dimension) AS also_changed,
       list(o.dimension || '=' || o.value ORDER BY o.dimension, o.value) AS new_values,
       min(o.first_seen) AS other_first_seen
FROM changes AS a
JOIN changes AS o
  ON o.route_name = a.route_name
 AND o.dimension <> 'adapter_id'
 AND abs(epoch(o.first_seen) - epoch(a.first_seen)) <= $window_seconds
WHERE a.dimension = 'adapter_id'
GROUP BY a.route_name, a.value, a.first_seen
ORDER BY a.route_name, a.first_seen
