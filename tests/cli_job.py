"""``aigc-course ARGS...`` with every optimizer step slowed down, run as a subprocess by tests/test_cli_train.py
(which kills it with SIGKILL once its first checkpoint appears, then resumes the run).

usage: python cli_job.py SECONDS_PER_STEP train gpt --config FILE --out DIR ...
"""

from __future__ import annotations

import sys
import time

from aigc_course import cli, train


def main() -> int:
    pause = float(sys.argv[1])
    real_optimize = train.StepContext.optimize

    def slow_optimize(self, *args, **kwargs):
        time.sleep(pause)   # before the update: a kill never lands between an update and its bookkeeping
        return real_optimize(self, *args, **kwargs)

    train.StepContext.optimize = slow_optimize
    return cli.main(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
