-- harness.lua: what the GPU checks share (tests/gpu/check.sh runs them with
-- the carried nnlua; busted is not there). check(name, fn) runs fn and
-- prints "ok name" or "FAIL name: why"; finish() prints the count and ends
-- the process with its status.
local harness = {passed = 0, failed = 0}

function harness.check(name, fn)
  local t0 = nn.clock()
  local ok, err = xpcall(fn, debug.traceback)
  if ok then
    harness.passed = harness.passed + 1
    print(string.format("ok   %-60s %7.3f s", name, nn.clock() - t0))
  else
    harness.failed = harness.failed + 1
    print(string.format("FAIL %s: %s", name, tostring(err)))
  end
end

-- fails with a message when a and b differ (tables compared element by element)
function harness.same(a, b, what)
  local function walk(x, y, path)
    if type(x) == "table" and type(y) == "table" then
      if #x ~= #y then error(string.format("%s%s: %d elements, expected %d", what or "", path, #x, #y), 0) end
      for i = 1, #x do walk(x[i], y[i], path .. "[" .. i .. "]") end
    elseif not (x == y or (x ~= x and y ~= y)) then
      error(string.format("%s%s: %s, expected %s", what or "", path, tostring(x), tostring(y)), 0)
    end
  end
  walk(a, b, "")
end

-- fails unless fn raises an error containing every fragment
function harness.raises(fn, ...)
  local ok, err = pcall(fn)
  if ok then error("expected an error", 2) end
  for _, fragment in ipairs({...}) do
    if not tostring(err):find(fragment, 1, true) then
      error(string.format("error %q lacks %q", tostring(err), fragment), 2)
    end
  end
end

function harness.finish(title)
  print(string.format("%s: %d passed, %d failed", title, harness.passed, harness.failed))
  os.exit(harness.failed == 0 and 0 or 1)
end

return harness
