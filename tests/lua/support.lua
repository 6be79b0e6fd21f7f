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

local function shell_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

--- What `nnlua -e code` prints (stdout and stderr): the nnlua that ctest
-- names in NNLUA. env: optional {NAME = value} set for that process only
-- (false unsets NAME). Second result: whether it exited with status 0.
function support.nnlua_output(code, env)
  local nnlua = assert(os.getenv("NNLUA"), "NNLUA must name the nnlua to test")
  local unset, set = {}, {} -- env's options come before its assignments
  for name, value in pairs(env or {}) do
    if value then set[#set + 1] = name .. "=" .. shell_quote(value)
    else unset[#unset + 1] = "-u " .. name end
  end
  local prefix = table.move(set, 1, #set, #unset + 1, unset)
  local command = (#prefix > 0 and "env " .. table.concat(prefix, " ") .. " " or "")
    .. nnlua .. " -e " .. shell_quote(code) .. " 2>&1"
  local p = assert(io.popen(command))
  local out = p:read("a")
  local ok = p:close()
  return out, ok == true
end

--- s quoted for the shell, whatever it holds.
function support.quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

--- Runs a shell command; its combined output and exit status (128 + the
-- signal's number when a signal ended it).
function support.run(cmd)
  local p = assert(io.popen(cmd .. " 2>&1", "r"))
  local out = p:read("a")
  local _, how, code = p:close()
  if how == "signal" then code = 128 + code end
  return out, code
end

--- A new empty directory under the system's temporary one; the caller
-- removes it (teardown(function() os.execute("rm -rf " .. dir) end)).
function support.scratch_dir()
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. dir))
  return dir
end

--- Writes bytes to path, replacing it.
function support.write(path, bytes)
  local f = assert(io.open(path, "wb"))
  f:write(bytes)
  f:close()
end

--- The bytes of path, or nil when it cannot be opened.
function support.read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

--- The names in dir (hidden ones too), sorted.
function support.listdir(dir)
  local names = {}
  local p = io.popen("ls -A " .. dir)
  for line in p:lines() do names[#names + 1] = line end
  p:close()
  table.sort(names)
  return names
end

--- An IDX file's bytes: magic (0, 0, type, ndim), big-endian sizes, data.
function support.idx_bytes(type_code, sizes, data)
  local parts = {string.char(0, 0, type_code, #sizes)}
  for _, s in ipairs(sizes) do parts[#parts + 1] = string.pack(">I4", s) end
  parts[#parts + 1] = data
  return table.concat(parts)
end

--- Compresses path into path .. ".gz" with gzip; returns that name.
function support.gzip(path)
  assert(os.execute("gzip -c " .. path .. " > " .. path .. ".gz"), "gzip failed")
  return path .. ".gz"
end

return support
