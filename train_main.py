"""Train, evaluate, export, sample and adapt hwgan models (the same as `hwgan train`).

  python train_main.py --flagfile=configs/quickstart.cfg
  python train_main.py --flagfile=configs/quickstart.cfg --mode=evaluate
  python train_main.py --flagfile=configs/quickstart.cfg --mode=sample --sample_out=grid.png
  python train_main.py --flagfile=configs/adapt_writer.cfg --writer_data=data/alice --init=BASE ...

The flags, their config and each mode live in the package (hw_gan.cli.train, hw_gan.experiment).
"""

from hw_gan.cli.train import entry

if __name__ == "__main__":
    entry()
