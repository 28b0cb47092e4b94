"""Train and evaluate GLASS or SLSG, or score images with a trained model: the command-line entry point.

    python main.py --method glass --dataset mvtec --datapath DATA --augpath DTD/images --classes carpet --test ckpt

Everything happens in the application package ``runner/`` (see docs/ARCHITECTURE.md).
"""
import sys
import warnings

if __name__ == "__main__":  # before numpy / torch start their thread pools (common/threads.py)
    from common.threads import configure_early

    configure_early(sys.argv[1:])

from runner.cli import main  # noqa: E402

if __name__ == "__main__":
    warnings.filterwarnings("default", category=UserWarning)
    sys.exit(main())
