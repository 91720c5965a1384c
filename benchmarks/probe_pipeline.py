"""Probe one input-pipeline/runtime configuration in this process (run one process per probe).

    python benchmarks/probe_pipeline.py MODE [--images N] [--batch B] [--intra T --inter T] [--spe K]
    MODE: notebook (float64 arrays), f32 (float32 arrays), batches (Batches as a PyDataset),
          pyfunc (Batches through tf.data: the study's path), tfdata (from_tensor_slices + map-cast),
          gather (tf.data gather from uint8 tensors). Env: TF_ENABLE_ONEDNN_OPTS=0, MMAPT=bytes.

Fits 640 images first (traces the train function), then times one fit over N images; prints
images/s, process CPU ms per image and cores busy. Used for the table in benchmarks/README.md.
"""
import argparse, os, sys, time, json
p = argparse.ArgumentParser()
p.add_argument("mode")
p.add_argument("--images", type=int, default=6000)
p.add_argument("--epochs", type=int, default=1)
p.add_argument("--batch", type=int, default=64)
p.add_argument("--intra", type=int, default=0)
p.add_argument("--inter", type=int, default=0)
p.add_argument("--spe", type=int, default=1)
p.add_argument("--tag", default="")
p.add_argument("--data-dir", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "cifar10-jpeg.tar.gz"))
a = p.parse_args()
import numpy as np
if os.environ.get("MMAPT"):
    import ctypes; ctypes.CDLL("libc.so.6").mallopt(-3, int(os.environ["MMAPT"]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import tensorflow as tf
if a.intra: tf.config.threading.set_intra_op_parallelism_threads(a.intra)
if a.inter: tf.config.threading.set_inter_op_parallelism_threads(a.inter)
import keras
from study.model import build_model
from study.training import Batches, as_dataset
from study.config import DataConfig
from study.data import load_dataset
d = load_dataset(DataConfig(data_dir=a.data_dir, subset=12500))
x, y = d.x_train[: a.images], d.y_train[: a.images]
keras.utils.set_random_seed(0)
m = build_model((32, 32, 3), 10)
if a.spe > 1:
    m.compile(optimizer=m.optimizer, loss=m.loss, metrics=["accuracy"], steps_per_execution=a.spe)

def data(xs, ys):
    if a.mode == "notebook":
        return dict(x=xs.astype("float64") / 255.0, y=ys, batch_size=a.batch)
    if a.mode == "f32":
        return dict(x=xs.astype("float32") / 255.0, y=ys, batch_size=a.batch)
    if a.mode == "batches":
        return dict(x=Batches(xs, ys, a.batch, shuffle=True, seed=0))
    if a.mode == "tfdata":
        ds = tf.data.Dataset.from_tensor_slices((xs, ys)).shuffle(len(xs), seed=0).batch(a.batch)
        ds = ds.map(lambda u, v: (tf.cast(u, tf.float32) / 255.0, v), num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
        return dict(x=ds)
    if a.mode == "pyfunc":  # the study's own pipeline
        return dict(x=as_dataset(Batches(xs, ys, a.batch, shuffle=True, seed=0)))
    if a.mode == "gather":
        xt = tf.convert_to_tensor(xs); yt = tf.convert_to_tensor(ys)
        order = np.random.default_rng(0).permutation(len(xs)).astype("int64")
        ds = tf.data.Dataset.from_tensor_slices(order).batch(a.batch).map(lambda i: (tf.cast(tf.gather(xt, tf.sort(i)), tf.float32) / 255.0, tf.gather(yt, tf.sort(i))), num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
        return dict(x=ds)
    raise SystemExit(a.mode)

m.fit(**data(x[:640], y[:640]), epochs=1, verbose=0)  # warm-up: traces the train function
kw = data(x, y)
t = time.perf_counter(); c0 = os.times()
m.fit(**kw, epochs=a.epochs, verbose=0)
dt = time.perf_counter() - t; c1 = os.times()
cpu = (c1.user - c0.user) + (c1.system - c0.system)
print(f"RESULT {a.mode}{a.tag} {a.images * a.epochs / dt:.0f} img/s  cpu {cpu / (a.images * a.epochs) * 1e3:.3f} ms/img  util {cpu/dt:.2f}", flush=True)
