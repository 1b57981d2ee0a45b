-- name: adapter_id_changes
-- answers: Every change of adapter id under one adapter name (a weight swap, silent or not): the id before and after, and the window in which the switch happened (last span of the old id, first span of the new one).
-- params: adapter (text, optional), since (timestamp, optional), until (timestamp, optional)
WITH ids AS (
    SELECT adapter_name, adapter_id, min(start_time) AS first_seen, max(start_time) AS last_seen, count(*) AS generations
    FROM generations
    WHERE adapter_name IS NOT NULL
      AND ($adapter::VARCHAR IS NULL OR adapter_name = $adapter::VARCHAR)
      AND start_time >= coalesce($since::TIMESTAMP, '-infinity'::TIMESTAMP)
      AND start_time < coalesce($until::TIMESTAMP, 'infinity'::TIMESTAMP)
    GROUP BY adapter_name, adapter_id
),
ordered AS (
    SELECT
        *,
        lag(adapter_id) OVER (PARTITION BY adapter_name ORDER BY first_seen, adapter_id) AS previous_id,
        lag(last_seen) OVER (PARTITION BY adapter_name ORDER BY first_seen, adapter_id) AS previous_last_seen
    FROM ids
)
SELECT
    adapter_name,
    previous_id AS old_adapter_id,
    adapter_id AS new_adapter_id,
    previous_last_seen AS old_last_seen,
    first_seen AS new_first_seen,
    generations AS new_id_generations
FROM ordered
WHERE previous_id IS NOT NULL
ORDER BY adapter_name, new_first_seen
