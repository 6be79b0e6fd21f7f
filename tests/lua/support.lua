-- What the specs share: reading a tensor's values and checking errors.
-- Loaded with dofile(os.getenv("NN_ROOT") .. "/tests/lua/support.lua").
local support = {}

--- The values of t in row-major order, as a flat Lua list.
function support.flat(t)
  if t:dim() == 0 then return {t:item()} end
  return t:contiguous():view(-1):totable()
end

--- Calls fn, which must raise; the message must contain every fragment
-- (plain text). Returns the message.
function support.expect_error(fn, ...)
  local ok, err = pcall(fn)
  assert(not ok, "expected an error, but the call succeeded")
  err = tostring(err)
  for _, fragment in ipairs({...}) do
    assert(err:find(fragment, 1, true), string.format("message %q lacks %q", err, fragment))
  end
  return err
end

--- What `nnlua -e code` prints (stdout and stderr): the nnlua that ctest
-- names in NNLUA.
function support.nnlua_output(code)
  local nnlua = assert(os.getenv("NNLUA"), "NNLUA must name the nnlua to test")
  local p = assert(io.popen(nnlua .. " -e '" .. code:gsub("'", "'\\''") .. "' 2>&1"))
  local out = p:read("a")
  p:close()
  return out
end

return support
