-- nn.cli: a script's command line, through Debian's lua-argparse. The
-- scripts in scripts/ build their options with it, so that each answers
-- --help and a mistake in the options prints the usage (exit status 2, as
-- Python's argparse and most Unix tools give), never a traceback.
return function(nn)
--- nn.cli: a script's options, parsed by lua-argparse (nn.cli.parser, nn.cli.whole, nn.cli.make_dir).
--   local parser = nn.cli.parser("Trains XOR.")
--   parser:flag("--quick", "fewer epochs")
--   parser:option("--epochs", "how many epochs", "100", nn.cli.whole(1, "--epochs"))
--   local args = parser:parse()        -- args.quick, args.epochs
  local cli = {}
  nn.cli = cli

  local function argparse()
    local ok, module = pcall(require, "argparse")
    if not ok then
      nn._raise("nn.cli: the scripts' options need the Lua module argparse: apt-get install lua-argparse "
                .. "(tools/setup.sh does)")
    end
    return module
  end

  -- "nnlua scripts/xor.lua": what a user typed to run the script.
  local function program_name()
    local script = rawget(_G, "arg") and arg[0]
    local interpreter = rawget(_G, "arg") and arg[-1]
    interpreter = type(interpreter) == "string" and interpreter:match("([^/]+)$") or "nnlua"
    if type(script) ~= "string" then return interpreter end
    return interpreter .. " " .. script
  end

  --- nn.cli.parser(description [, epilog]) -> an argparse parser for the
  -- running script: named as it was started ("nnlua scripts/xor.lua"),
  -- answering -h/--help, and ending the script with the usage and the
  -- mistake on stderr and exit status 2 when the options are wrong. Add
  -- options with parser:flag and parser:option (see lua-argparse's manual),
  -- then parser:parse() gives the table of values.
  --   local parser = nn.cli.parser("A sweep of the XOR network.")
  --   parser:option("--workers", "parallel trials", nil, nn.cli.whole(1, "--workers"))
  --   local args = parser:parse()
  function cli.parser(description, epilog)
    if description ~= nil and type(description) ~= "string" then
      nn._raise("nn.cli.parser: description must be a string, got " .. type(description))
    end
    if epilog ~= nil and type(epilog) ~= "string" then
      nn._raise("nn.cli.parser: epilog must be a string, got " .. type(epilog))
    end
    local parser = argparse()(program_name(), description, epilog)
    -- argparse itself exits with 1; a usage error is 2 by convention.
    parser.error = function(self, message)
      io.stderr:write(self:get_usage(), "\n\nError: ", message, "\n")
      io.stderr:flush()
      os.exit(2)
    end
    return parser
  end

  --- nn.cli.whole([min [, name]]) -> a converter for parser:option(...,
  -- convert): the option's text as an integer, refused (a usage error that
  -- names the option as name, when given) unless it is a whole number of at
  -- least min (default 1).
  --   parser:option("--epochs", "how many epochs", "5", nn.cli.whole(1, "--epochs"))
  function cli.whole(min, name)
    min = min == nil and 1 or min
    if math.type(min) ~= "integer" then nn._raise("nn.cli.whole: min must be an integer, got " .. tostring(min)) end
    if name ~= nil and type(name) ~= "string" then
      nn._raise("nn.cli.whole: name must be a string, got " .. type(name))
    end
    local prefix = name and (name .. " ") or ""
    return function(text)
      local v = math.tointeger(tonumber(text))
      if not v or v < min then
        return nil, string.format("%sneeds a whole number >= %d, got '%s'", prefix, min, text)
      end
      return v
    end
  end

  --- nn.cli.device(parser) -> parser: adds `--device cpu|cuda`: where a
  -- script puts its model and data. The default is the seed's choice,
  -- "cuda" where nn.cuda.is_available(), else "cpu"; "cuda" where it is
  -- not available is a usage error that says why.
  --   local args = nn.cli.device(nn.cli.parser("XOR")):parse()
  --   model:to(args.device)
  function cli.device(parser)
    if type(parser) ~= "table" or type(parser.option) ~= "function" then
      nn._raise("nn.cli.device: expected a parser (made by nn.cli.parser), got " .. type(parser))
    end
    local default = nn.cuda.is_available() and "cuda" or "cpu"
    parser:option("--device", "where the model and the data go: cpu or cuda", default, function(text)
      if text ~= "cpu" and text ~= "cuda" then
        return nil, string.format("--device needs cpu or cuda, got '%s'", text)
      end
      if text == "cuda" and not nn.cuda.is_available() then
        return nil, "--device cuda: cuda is not available: " .. nn.cuda.why_unavailable()
      end
      return text
    end)
    return parser
  end

  --- nn.cli.make_dir(path) -> path: creates the directory path (and its
  -- parents) unless it exists; an error names it when it cannot.
  --   local out = nn.cli.make_dir(args.out)
  function cli.make_dir(path)
    if type(path) ~= "string" or path == "" then
      nn._raise("nn.cli.make_dir: path must be a non-empty string, got " .. tostring(path))
    end
    local ok = os.execute("mkdir -p -- '" .. path:gsub("'", "'\\''") .. "' 2>/dev/null")
    if not ok then nn._raise("nn.cli.make_dir: cannot create the directory '" .. path .. "'") end
    return path
  end

  return cli
end
