# Writes OUT, the Redis Functions library "chorus": the files of FILES ('|'-separated),
# src/state/lua/*.lua, concatenated in name order. One library, split by concern
# in the tree; 00_header.lua carries the "#!lua name=chorus" line.
string(REPLACE "|" ";" FILES "${FILES}")
list(SORT FILES)
set(body "")
foreach(f ${FILES})
  if(f STREQUAL "")
    continue()
  endif()
  file(READ ${f} content)
  string(APPEND body "${content}")
endforeach()
file(WRITE ${OUT}.tmp "${body}")
file(COPY_FILE ${OUT}.tmp ${OUT} ONLY_IF_DIFFERENT)
