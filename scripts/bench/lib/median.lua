-- median.lua: the median of a list of numbers, the mean of the middle two
-- for an even count; the list is left as it was. What the benchmarks report.
--   local median = dofile(here .. "/lib/median.lua")
return function(list)
  local s = {table.unpack(list)}
  table.sort(s)
  local n = #s
  if n % 2 == 1 then return s[(n + 1) // 2] end
  return (s[n // 2] + s[n // 2 + 1]) / 2
end
