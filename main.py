"""Train and evaluate GLASS or SLSG, or score images with a trained model: the command-line entry point.

    python main.py --method glass --dataset mvtec --datapath DATA --augpath DTD/images --classes carpet --test ckpt

Everything happens in the application package ``runner/`` (see docs/ARCHITECTURE.md).
"""
import sys
import warnings

from runner.cli import main

if __name__ == "__main__":
    warnings.filterwarnings("default", category=UserWarning)
    sys.exit(main())
