-- Function registration.
-- Part of the chorus library: src/state/lua/*.lua are concatenated in
-- name order at build (cmake/assemble_lua.cmake).

redis.register_function('chorus_actual', actual)
redis.register_function('chorus_prediction', prediction)
redis.register_function('chorus_release', release)
redis.register_function('chorus_monitor', monitor)
redis.register_function('chorus_global', global_call)
redis.register_function{function_name = 'chorus_dead_letter_seen', callback = dead_letter_seen,
                        flags = {'no-writes'}}
redis.register_function('chorus_dead_letter_done', dead_letter_done)
redis.register_function{function_name = 'chorus_model_stats', callback = model_stats,
                        flags = {'no-writes'}}
redis.register_function{function_name = 'chorus_window_stats', callback = window_stats,
                        flags = {'no-writes'}}
redis.register_function{function_name = 'chorus_debug_check', callback = debug_check,
                        flags = {'no-writes'}}
