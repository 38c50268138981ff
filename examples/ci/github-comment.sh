#!/usr/bin/env bash
# Makes the pull request's Trellis comments match DIR/comment-*.md: updates the
# comments of the last plan in place (found by their `<!-- trellis-plan`
# marker), adds the ones missing and deletes the ones left over, so a pull
# request shows one current plan. Needs `gh`, GITHUB_REPOSITORY, PR, GH_TOKEN.
set -euo pipefail
dir=${1:?usage: github-comment.sh DIR}
repo=${GITHUB_REPOSITORY:?} pr=${PR:?}

mapfile -t old < <(gh api "repos/$repo/issues/$pr/comments" --paginate \
  --jq '.[] | select(.body | startswith("<!-- trellis-plan")) | .id')
mapfile -t new < <(ls "$dir"/comment-*.md | sort -V)

for i in "${!new[@]}"; do
  if [ -n "${old[$i]:-}" ]; then
    gh api --method PATCH "repos/$repo/issues/comments/${old[$i]}" -F "body=@${new[$i]}" > /dev/null
  else
    gh api --method POST "repos/$repo/issues/$pr/comments" -F "body=@${new[$i]}" > /dev/null
  fi
done
for ((i = ${#new[@]}; i < ${#old[@]}; i++)); do
  gh api --method DELETE "repos/$repo/issues/comments/${old[$i]}" > /dev/null
done
