--[[
  Deletes a key only if it still holds the value the caller set: a file id is released only by
  the upload that holds it, a claim only by the attempt that made it.

  KEYS[1]  the key                    <prefix>:uploads:id:<fileId> or <prefix>:uploads:done:<jobId>
  ARGV[1]  the value it must hold

  Returns 1 if deleted, 0 if it held something else or nothing.
]]
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
