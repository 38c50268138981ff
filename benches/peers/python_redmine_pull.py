"""The peer the Redmine benchmark compares with: python-redmine pulling every
issue of one project, every status, with relations, as a script would.

Usage: python_redmine_pull.py URL KEY PROJECT
Prints one JSON line: {"issues": N, "seconds": S}. The relations come in
each page (include=relations); reading an issue's `relations` attribute
would send a request per issue, so the script, like a careful user, does not.
"""
import json
import sys
import time

from redminelib import Redmine


def main():
    url, key, project = sys.argv[1:4]
    redmine = Redmine(url, key=key)
    started = time.monotonic()
    issues = redmine.issue.filter(project_id=project, status_id="*", include=["relations"])
    count = sum(1 for _ in issues)
    took = time.monotonic() - started
    print(json.dumps({"issues": count, "seconds": took}))


if __name__ == "__main__":
    main()
