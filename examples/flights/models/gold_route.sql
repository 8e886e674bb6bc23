-- Per route: volume, distance and reliability, with airport names.
SELECT
  f.route,
  f.origin,
  o.name AS origin_name,
  f.dest,
  d.name AS dest_name,
  COUNT(*) AS flights,
  COUNT(DISTINCT f.carrier) AS carriers,
  MAX(f.distance) AS distance,
  ROUND(CAST(AVG(f.arr_delay) AS NUMERIC), 2) AS avg_arr_delay,
  ROUND(CAST(AVG(CASE WHEN f.arr_delay > 15 THEN 1.0 ELSE 0.0 END) AS NUMERIC), 4) AS late_share
FROM {{ ref('silver_flights') }} f
LEFT JOIN {{ ref('raw_airports') }} o ON o.faa = f.origin
LEFT JOIN {{ ref('raw_airports') }} d ON d.faa = f.dest
GROUP BY f.route, f.origin, o.name, f.dest, d.name
