"""Run a worker from a checkout: `python worker.py --address localhost:7233 --task-queue mipro`.

The worker's code is `mipro/worker.py` (installed as `mipro.worker`, so it cannot clash with another
package's top-level `worker`); `mipro worker` runs the same thing.
"""

from mipro.worker import main

if __name__ == "__main__":
    main()
