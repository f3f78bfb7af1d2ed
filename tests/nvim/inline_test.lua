-- Headless Neovim test of the steercode Lua module against `steercode serve` (run by
-- tests/test_editors.py). Writes its observations as JSON to $RESULT_FILE and quits.
local results = { steps = {} }
local function note(k, v) results[k] = v; table.insert(results.steps, k) end
local function finish(code)
  local f = io.open(os.getenv("RESULT_FILE"), "w")
  f:write(vim.json.encode(results))
  f:close()
  vim.cmd(code == 0 and "qa!" or "cq!")
end

local ok, err = pcall(function()
  vim.o.swapfile = false
  vim.cmd("filetype on") -- -u NONE: filetypes are what vim.lsp.enable attaches by
  package.path = os.getenv("STEERCODE_LUA") .. "/?.lua;" .. package.path
  local sc = require("steercode")
  sc.setup({ native = false, debounce_ms = 20 })
  note("nvim_version", tostring(vim.version()))
  vim.lsp.config("steercode", {
    cmd = vim.json.decode(os.getenv("STEERCODE_CMD")),
    filetypes = { "python" },
    root_markers = { ".git" },
    init_options = { maxTokens = 24, lineMode = "single" },
  })
  vim.lsp.enable("steercode")
  vim.cmd.edit(os.getenv("TEST_FILE"))
  local buf = vim.api.nvim_get_current_buf()
  local client
  note("attached", vim.wait(60000, function()
    client = vim.lsp.get_clients({ bufnr = buf, name = "steercode" })[1]
    return client ~= nil and client.initialized
  end, 50))
  note("inline_capability", client.server_capabilities.inlineCompletionProvider ~= nil)
  note("ready", vim.wait(120000, function()
    local r = client:request_sync("steercode/status", {}, 5000, buf)
    return r and r.result and r.result.ready
  end, 200))

  -- Typing happens through feedkeys in insert mode, as a user would; "x!" keeps Neovim in insert
  -- mode (processing events) until <Esc>, so the checks run from a timer meanwhile.
  local function while_typing(keys, fn)
    vim.defer_fn(function()
      local ok2, err2 = pcall(fn)
      if not ok2 then
        results.error = tostring(err2)
      end
      vim.api.nvim_feedkeys(vim.keycode("<Esc>"), "n", false)
    end, 100)
    vim.api.nvim_feedkeys(keys, "tx!", false)
  end

  -- type at the end of "    return " inside fibonacci()
  local last = vim.api.nvim_buf_line_count(buf)
  vim.api.nvim_win_set_cursor(0, { last, 0 })
  while_typing(vim.keycode("A") .. "fib", function()
    note("mode_after_typing", vim.api.nvim_get_mode().mode)
    note("ghost_text", vim.wait(30000, function()
      return #vim.api.nvim_buf_get_extmarks(buf, vim.api.nvim_create_namespace("steercode"), 0, -1, {}) > 0
    end, 20))
    local item = sc.current(buf)
    note("suggestion", item and item.text or vim.NIL)
    local before = vim.api.nvim_buf_get_lines(buf, last - 1, last, false)[1]
    note("accepted", sc.accept("all"))
    note("line_before", before)
    note("line_after", vim.api.nvim_buf_get_lines(buf, last - 1, last, false)[1])
    note("extmarks_after_accept", #vim.api.nvim_buf_get_extmarks(buf, vim.api.nvim_create_namespace("steercode"), 0, -1, {}))
  end)
  if results.error then
    error(results.error)
  end

  -- word-by-word accept on a fresh request
  vim.api.nvim_buf_set_lines(buf, last - 1, last, false, { "    return fib" })
  vim.api.nvim_win_set_cursor(0, { last, 13 })
  while_typing(vim.keycode("a") .. "o", function()
    vim.wait(30000, function() return sc.current(buf) ~= nil end, 20)
    local full = sc.current(buf) and sc.current(buf).text or ""
    sc.accept("word")
    note("word_suggestion", full)
    note("word_line", vim.api.nvim_buf_get_lines(buf, last - 1, last, false)[1])
  end)
  if results.error then
    error(results.error)
  end

  -- two keystrokes in quick succession: the request in flight for the first is cancelled with
  -- $/cancelRequest, and what is shown belongs to the final text
  local cancels = {}
  local orig_cancel = client.cancel_request
  client.cancel_request = function(self, id)
    table.insert(cancels, id)
    return orig_cancel(self, id)
  end
  vim.api.nvim_buf_set_lines(buf, last, last, false, { "    total = " })
  vim.api.nvim_win_set_cursor(0, { last + 1, 12 })
  while_typing(vim.keycode("a"), function()
    local function key(ch)
      local row, col = unpack(vim.api.nvim_win_get_cursor(0))
      vim.api.nvim_buf_set_text(buf, row - 1, col, row - 1, col, { ch })
      vim.api.nvim_win_set_cursor(0, { row, col + #ch })
      vim.api.nvim_exec_autocmds("TextChangedI", { buffer = buf })
    end
    key("f")
    vim.wait(40) -- past the 20 ms debounce: the request for "total = f" is in flight
    key("i")
    vim.wait(30000, function() return sc.current(buf) ~= nil end, 20)
    local item = sc.current(buf)
    note("cancel_requests_sent", #cancels)
    note("fast_line", vim.api.nvim_buf_get_lines(buf, last, last + 1, false)[1])
    note("fast_suggestion_col", item and item.col or vim.NIL)
  end)
  client.cancel_request = orig_cancel
  if results.error then
    error(results.error)
  end

  -- the completion popup fallback (textDocument/completion)
  local params = vim.lsp.util.make_position_params(0, client.offset_encoding)
  local r = client:request_sync("textDocument/completion", params, 30000, buf)
  local items = r and r.result and (r.result.items or r.result) or {}
  note("completion_items", #items)
  note("completion_label", items[1] and items[1].label or vim.NIL)
end)
if not ok then
  results.error = tostring(err)
  finish(1)
else
  finish(0)
end
