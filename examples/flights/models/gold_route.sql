-- Per route: volume, distance and reliability, with airport names. Aggregating first and
-- joining the airports to the 223 routes afterwards is 3x faster than joining 328k flights.
WITH routes AS (
  SELECT
    route, origin, dest,
    COUNT(*) AS flights,
    COUNT(DISTINCT carrier) AS carriers,
    MAX(distance) AS distance,
    AVG(arr_delay) AS avg_arr_delay,
    AVG(CASE WHEN arr_delay > 15 THEN 1.0 ELSE 0.0 END) AS late_share
  FROM {{ ref('silver_flights') }}
  GROUP BY route, origin, dest
)
SELECT
  r.route,
  r.origin,
  o.name AS origin_name,
  r.dest,
  d.name AS dest_name,
  r.flights,
  r.carriers,
  r.distance,
  ROUND(CAST(r.avg_arr_delay AS NUMERIC), 2) AS avg_arr_delay,
  ROUND(CAST(r.late_share AS NUMERIC), 4) AS late_share
FROM routes r
LEFT JOIN {{ ref('raw_airports') }} o ON o.faa = r.origin
LEFT JOIN {{ ref('raw_airports') }} d ON d.faa = r.dest
