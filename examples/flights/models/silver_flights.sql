-- One row per scheduled flight, with the airline and plane it flew and a route key.
SELECT
  f.year, f.month, f.day,
  f.carrier, a.name AS airline,
  f.flight, f.tailnum,
  f.origin, f.dest, f.origin || '-' || f.dest AS route,
  f.sched_dep_time, f.dep_time, f.dep_delay,
  f.sched_arr_time, f.arr_time, f.arr_delay,
  f.air_time, f.distance,
  f.time_hour,
  p.year AS plane_year, p.manufacturer AS plane_manufacturer, p.seats AS plane_seats
FROM {{ ref('raw_flights') }} f
LEFT JOIN {{ ref('raw_airlines') }} a ON a.carrier = f.carrier
LEFT JOIN {{ ref('raw_planes') }} p ON p.tailnum = f.tailnum
