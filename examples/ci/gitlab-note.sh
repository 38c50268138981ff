#!/usr/bin/env bash
# Makes the merge request's Trellis notes match DIR/comment-*.md: updates the
# notes of the last plan in place (found by their `<!-- trellis-plan` marker),
# adds the ones missing and deletes the ones left over. Needs curl, jq, and
# GitLab's predefined CI_API_V4_URL, CI_PROJECT_ID, CI_MERGE_REQUEST_IID, plus
# TRELLIS_GITLAB_TOKEN.
set -euo pipefail
dir=${1:?usage: gitlab-note.sh DIR}
api="${CI_API_V4_URL:?}/projects/${CI_PROJECT_ID:?}/merge_requests/${CI_MERGE_REQUEST_IID:?}/notes"
auth="PRIVATE-TOKEN: ${TRELLIS_GITLAB_TOKEN:?}"

mapfile -t old < <(curl -sSf -H "$auth" "$api?per_page=100&sort=asc&order_by=created_at" \
  | jq -r '.[] | select(.body | startswith("<!-- trellis-plan")) | .id')
mapfile -t new < <(ls "$dir"/comment-*.md | sort -V)

for i in "${!new[@]}"; do
  if [ -n "${old[$i]:-}" ]; then
    curl -sSf -X PUT -H "$auth" --data-urlencode "body@${new[$i]}" "$api/${old[$i]}" > /dev/null
  else
    curl -sSf -X POST -H "$auth" --data-urlencode "body@${new[$i]}" "$api" > /dev/null
  fi
done
for ((i = ${#new[@]}; i < ${#old[@]}; i++)); do
  curl -sSf -X DELETE -H "$auth" "$api/${old[$i]}" > /dev/null
done
