# Claude Code always starts with no_new_privs set (see /usr/local/bin/claude-noprivs).
alias claude='claude-noprivs'
alias c='claude-noprivs'
