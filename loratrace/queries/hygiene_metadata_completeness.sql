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
per_route AS (
    -- one pass over the generations; the per-field rows below come from this small result
    SELECT service_name, route_name,
           count(*) AS all_generations,
           count(*) FILTER (WHERE adapter_name IS NOT NULL) AS adapter_generations,
           count(*) FILTER (WHERE adapter_name IS NULL AND variant IS NULL) AS adapter_identity,
           count(*) FILTER (WHERE adapter_name IS NOT NULL AND adapter_id IS NULL) AS adapter_id,
           count(*) FILTER (WHERE adapter_name IS NOT NULL AND adapter_rank IS NULL) AS adapter_rank,
           count(*) FILTER (WHERE adapter_name IS NOT NULL AND adapter_alpha IS NULL) AS adapter_alpha,
           count(*) FILTER (WHERE adapter_name IS NOT NULL AND adapter_merged IS NULL) AS adapter_merged,
           count(*) FILTER (WHERE adapter_name IS NOT NULL AND dataset_version IS NULL) AS dataset_version,
           count(*) FILTER (WHERE prompt_version IS NULL) AS prompt_version,
           count(*) FILTER (WHERE route_name IS NULL) AS route_name_missing
    FROM g
    GROUP BY service_name, route_name
),
fields AS (
    SELECT service_name, route_name, 'adapter_identity' AS field, all_generations AS applicable,
           adapter_identity AS missing FROM per_route
    UNION ALL SELECT service_name, route_name, 'adapter_id', adapter_generations, adapter_id FROM per_route
    UNION ALL SELECT service_name, route_name, 'adapter_rank', adapter_generations, adapter_rank FROM per_route
    UNION ALL SELECT service_name, route_name, 'adapter_alpha', adapter_generations, adapter_alpha FROM per_route
    UNION ALL SELECT service_name, route_name, 'adapter_merged', adapter_generations, adapter_merged FROM per_route
    UNION ALL SELECT service_name, route_name, 'dataset_version', adapter_generations, dataset_version FROM per_route
    UNION ALL SELECT service_name, route_name, 'prompt_version', all_generations, prompt_version FROM per_route
    UNION ALL SELECT service_name, route_name, 'route_name', all_generations, route_name_missing FROM per_route
)
SELECT service_name,
       route_name,
       field,
       applicable,
       missing,
       round(missing / applicable, 4) AS missing_share
FROM fields
WHERE missing > 0
ORDER BY service_name, route_name NULLS FIRST, field
