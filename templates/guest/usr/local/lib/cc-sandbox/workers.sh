# shellcheck shell=bash disable=SC2034
# What makes a user a project's worker, for every guest script that decides it (cc-sandbox-project,
# worker-tmp, cc-sandbox-firewall): its uid's range and its name. Sourced, never run. The host's
# rule is src/config/projects.ts (projectUidBase, projectUidSlots) and the schema's project-name,
# which a unit test holds this file to.
readonly worker_uid_min=20000 worker_uid_max=29999
# A project's name: lowercase letters, digits and hyphens, starting with a letter, at most 20; its
# worker is cc-NAME.
readonly project_name_re='^[a-z]([a-z0-9-]{0,18}[a-z0-9])?$'
readonly worker_name_re="^cc-${project_name_re#^}"
