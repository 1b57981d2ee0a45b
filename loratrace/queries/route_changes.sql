-- name: route_changes
-- answers: What changed on a route in a window: every configuration (adapter name and id, prompt version, base model, quantization) that served it, when each was first and last seen, and whether it is new in the window.
-- params: route (text), since (timestamp, optional), until (timestamp, optional)
WITH configurations AS (
    SELECT
        adapter_name,
        adapter_id,
        prompt_version,
        base_model_name,
        model_quantization_method,
        model_quantization_bits,
        min(start_time) AS first_seen,
        max(start_time) AS last_seen,
        count(*) FILTER (
            WHERE start_time >= coalesce($since::TIMESTAMP, '-infinity'::TIMESTAMP)
              AND start_time < coalesce($until::TIMESTAMP, 'infinity'::TIMESTAMP)
        ) AS generations_in_window
    FROM generations
    WHERE route_name = $route
      AND start_time < coalesce($until::TIMESTAMP, 'infinity'::TIMESTAMP)
    GROUP BY ALL
)
SELECT
    *,
    first_seen >= coalesce($since::TIMESTAMP, '-infinity'::TIMESTAMP) AS new_in_window
FROM configurations
WHERE generations_in_window > 0
ORDER BY first_seen, adapter_name NULLS FIRST, adapter_id, prompt_version
