-- wrk script: POST one chat-completion body and validate every response body.
--
-- Arguments (after `--` on the wrk command line):
--   1: mode, "stream" or "non-stream"
--   2: expected number of content chunks in a stream
--   3: path of a file holding the JSON request body
--   4…: "key=SECRET" sends that bearer key; "unique" makes every request body different
--       (each gets its own number in the user message: cache misses); "check=responses",
--       "check=anthropic", "check=ollama", "check=completions" or "check=embeddings" validates
--       that API's answers instead of chat completions
--
-- A response counts as an error when its status is not 2xx ("non2xx") or its body does not
-- look complete ("invalid"): non-stream bodies must carry "finish_reason":"stop"; stream bodies
-- must end with `data: [DONE]` and hold exactly the expected number of non-empty content deltas.
-- Responses API answers: non-stream bodies must carry "status":"completed"; stream bodies must
-- end with a `response.completed` event and hold exactly the expected number of non-empty
-- `response.output_text.delta` events. Anthropic: "stop_reason":"end_turn", and streams end
-- with the message_stop event and hold exactly the expected number of non-empty text_delta
-- events. Ollama: non-stream bodies carry "done":true; NDJSON streams end with the
-- "done":true line and hold exactly the expected number of lines with non-empty content.
-- Legacy completions: as chat, with `text` instead of `content`. Embeddings (non-stream
-- only): the body holds an "embedding" array.
-- done() prints one line, "BENCH_RESULT {json}", that bench/wrk.py parses.

local threads = {}

-- Per-thread state (globals so that done() can read them through thread:get).
mode = "non-stream"
expected_chunks = 0
non2xx = 0
invalid = 0
checked = 0
bad_sample = ""

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   mode = args[1] or "non-stream"
   expected_chunks = tonumber(args[2] or "0")
   local f = assert(io.open(args[3], "rb"))
   wrk.body = f:read("*a")
   f:close()
   wrk.method = "POST"
   wrk.headers["Content-Type"] = "application/json"
   wrk.headers["Authorization"] = "Bearer sk-fake"
   for i = 4, #args do
      local key = args[i]:match("^key=(.+)$")
      local checked = args[i]:match("^check=(.+)$")
      if key then
         wrk.headers["Authorization"] = "Bearer " .. key
      elseif checked then
         check = checked
      elseif args[i] == "unique" then
         unique = true
      end
   end
   if unique then
      -- Defined only here: a script without request() keeps wrk's prebuilt, faster request.
      math.randomseed(os.time() + math.floor(os.clock() * 1e6))
      local nonce = tostring(math.random(1, 2 ^ 30))
      local head, tail = wrk.body:match('^(.-"content":%s*")(.*)$')
      if not head then -- a Responses or embeddings body: the prompt is `input`
         head, tail = wrk.body:match('^(.-"input":%s*")(.*)$')
      end
      if not head then -- a legacy completions body
         head, tail = wrk.body:match('^(.-"prompt":%s*")(.*)$')
      end
      local counter = 0
      request = function()
         counter = counter + 1
         return wrk.format(nil, nil, nil, head .. nonce .. "-" .. counter .. " " .. tail)
      end
   end
end

unique = false
check = "chat"

local function count_content_chunks(body)
   local n = 0
   for event in body:gmatch("data: ([^\n]*)") do
      -- A non-empty string content; role-only, empty ("") and null deltas do not count.
      if event:find('"content":%s*"[^"]') then
         n = n + 1
      end
   end
   return n
end

local function count_text_deltas(body)
   local n = 0
   local pattern = check == "anthropic" and '"type":"text_delta","text":"[^"]'
      or "event: response%.output_text%.delta\ndata: [^\n]*\"delta\":%s*\"[^\"]"
   for _ in body:gmatch(pattern) do
      n = n + 1
   end
   return n
end

local function is_valid_anthropic(body)
   if mode == "stream" then
      if not body:find('data: {"type":"message_stop"}%s*$') then
         return false
      end
      return count_text_deltas(body) == expected_chunks
   end
   return body:find('"stop_reason":%s*"end_turn"') ~= nil
end

local function is_valid_response(body)
   if mode == "stream" then
      if not body:find("event: response%.completed\ndata: [^\n]*\n\n$") then
         return false
      end
      return count_text_deltas(body) == expected_chunks
   end
   return body:find('"status":%s*"completed"') ~= nil
end

local function count_matches(body, pattern)
   local n = 0
   for _ in body:gmatch(pattern) do
      n = n + 1
   end
   return n
end

local function is_valid_ollama(body)
   if mode == "stream" then
      if not body:find('"done":true[^\n]*\n?$') then
         return false
      end
      return count_matches(body, '"content":"[^"]') == expected_chunks
   end
   return body:find('"done":%s*true') ~= nil
end

local function is_valid_completion(body)
   if mode == "stream" then
      if not body:find("data: %[DONE%]%s*$") then
         return false
      end
      return count_matches(body, 'data: [^\n]*"text":%s*"[^"]') == expected_chunks
   end
   return body:find('"finish_reason":%s*"stop"') ~= nil
end

local function is_valid(body)
   if check == "ollama" then
      return is_valid_ollama(body)
   end
   if check == "completions" then
      return is_valid_completion(body)
   end
   if check == "embeddings" then
      return body:find('"embedding":%s*%[') ~= nil
   end
   if check == "anthropic" then
      return is_valid_anthropic(body)
   end
   if check == "responses" then
      return is_valid_response(body)
   end
   if mode == "stream" then
      if not body:find("data: %[DONE%]%s*$") then
         return false
      end
      return count_content_chunks(body) == expected_chunks
   end
   return body:find('"finish_reason":%s*"stop"') ~= nil
end

function response(status, headers, body)
   checked = checked + 1
   if status < 200 or status > 299 then
      non2xx = non2xx + 1
   elseif not is_valid(body) then
      invalid = invalid + 1
   else
      return
   end
   if bad_sample == "" then
      bad_sample = status .. " " .. body:sub(1, 300)
   end
end

local function json_string(s)
   s = s:gsub('[%c"\\]', function(c)
      if c == '"' then return '\\"' end
      if c == "\\" then return "\\\\" end
      return string.format("\\u%04x", c:byte())
   end)
   return '"' .. s .. '"'
end

function done(summary, latency, requests)
   local total_non2xx, total_invalid, total_checked, sample = 0, 0, 0, ""
   for _, t in ipairs(threads) do
      total_non2xx = total_non2xx + t:get("non2xx")
      total_invalid = total_invalid + t:get("invalid")
      total_checked = total_checked + t:get("checked")
      if sample == "" then
         sample = t:get("bad_sample")
      end
   end
   local e = summary.errors
   io.write(string.format(
      "BENCH_RESULT {\"requests\":%d,\"duration_us\":%d,\"bytes\":%d,"
         .. "\"checked\":%d,\"non2xx\":%d,\"invalid\":%d,"
         .. "\"connect_errors\":%d,\"read_errors\":%d,\"write_errors\":%d,"
         .. "\"timeouts\":%d,\"status_errors\":%d,"
         .. "\"p50_us\":%d,\"p90_us\":%d,\"p99_us\":%d,\"mean_us\":%.1f,\"max_us\":%d,"
         .. "\"bad_sample\":%s}\n",
      summary.requests, summary.duration, summary.bytes,
      total_checked, total_non2xx, total_invalid,
      e.connect, e.read, e.write, e.timeout, e.status,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency.mean, latency.max,
      json_string(sample)
   ))
end
