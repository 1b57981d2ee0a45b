-- name: hygiene_metadata_completeness
-- answers: Which services and routes log generations without the adapter's identity, id, rank, alpha, merge state, dataset version, prompt version or route ("only the base model is logged")?
-- params: since (TIMESTAMP UTC or NULL for all), until (TIMESTAMP UTC or NULL for all)
-- Generations are read from `spans` by operation (what the `generations` view selects, without the view's
-- evaluation counts, which cost four times the query's own work on a large store).
-- An adapter's id, rank, alpha, merge state and dataset version are expected on generations an adapter served;
-- the adapter's identity (an adapter name, or loratrace's variant=base saying none served) and the prompt version
-- and route on every generation. Production traffic only: golden-set replay (example_id set) is written by
-- loratrace replay itself.
WITH g AS (
    SELECT *
    FROM spans
    WHERE operation_name IN ('text_completion', 'chat', 'generate_content')
      AND example_id IS NULL
      AND (CAST($since AS TIMESTAMP) IS NULL OR start_time >= CAST($since AS TIMESTAMP))
      AND (CAST($until AS TIMESTAMP) IS NULL OR start_time < CAST($until AS TIMESTAMP))
),
fields AS (
    SELECT service_name, route_name, 'adapter_identity' AS field, true AS applies,
           adapter_name IS NULL AND variant IS NULL AS missing FROM g
    UNION ALL SELECT service_name, route_name, 'adapter_id', adapter_name IS NOT NULL, adapter_id IS NULL FROM g
    UNION ALL SELECT service_name, route_name, 'adapter_rank', adapter_name IS NOT NULL, adapter_rank IS NULL FROM g
    UNION ALL SELECT service_name, route_name, 'adapter_alpha', adapter_name IS NOT NULL, adapter_alpha IS NULL FROM g
    UNION ALL SELECT service_name, route_name, 'adapter_merged', adapter_name IS NOT NULL, adapter_merged IS NULL FROM g
    UNION ALL SELECT service_name, route_name, 'dataset_version', adapter_name IS NOT NULL, dataset_version IS NULL FROM g
    UNION ALL SELECT service_name, route_name, 'prompt_version', true, prompt_version IS NULL FROM g
    UNION ALL SELECT service_name, route_name, 'route_name', true, route_name IS NULL FROM g
)
SELECT service_name,
       route_name,
       field,
       count(*) AS applicable,
       count(*) FILTER (WHERE missing) AS missing,
       round(count(*) FILTER (WHERE missing) / count(*), 4) AS missing_share
FROM fields
WHERE applies
GROUP BY service_name, route_name, field
HAVING count(*) FILTER (WHERE missing) > 0
ORDER BY service_name, route_name NULLS FIRST, field
