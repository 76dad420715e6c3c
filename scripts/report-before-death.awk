# awk -f report-before-death.awk CONSOLE: exit status 0 if the kernel
# reported something (WARN, UBSAN, KASAN, lockdep) before it died, 1 if not.
# A panic, lockup, oops or triple fault is the death itself, and what comes
# after it is not read: scripts/check and scripts/bench retry a boot that
# died of the emulator issue (Documentation/known-issues.rst), never one
# whose kernel had reported a bug before.
/Kernel panic|LOCKUP|BUG: unable|Oops|general protection|triple fault/ { exit }
/WARNING:|cut here|UBSAN:|KASAN:|possible .*locking|lockdep/ { bad = 1 }
END { exit !bad }
