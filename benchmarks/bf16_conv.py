"""conv2 forward and filter gradient in float32 vs bfloat16 (CPU ms per batch of 64): bf16 on this CPU.

    python benchmarks/bf16_conv.py
"""
import os, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf
B = 64
for dt in (tf.float32, tf.bfloat16):
    x2 = tf.cast(tf.random.normal((B, 15, 15, 32)), dt); k2 = tf.cast(tf.random.normal((3, 3, 32, 64)), dt)
    g2 = tf.cast(tf.random.normal((B, 13, 13, 64)), dt)
    fs = {"fwd": tf.function(lambda: tf.nn.conv2d(x2, k2, 1, "VALID")),
          "dW": tf.function(lambda: tf.raw_ops.Conv2DBackpropFilter(input=x2, filter_sizes=[3,3,32,64], out_backprop=g2, strides=[1,1,1,1], padding="VALID"))}
    for n, f in fs.items():
        f(); c = os.times()
        for _ in range(50): f()
        c2 = os.times()
        print(dt.name, n, f"{((c2.user-c.user)+(c2.system-c.system))/50*1e3:.1f} ms cpu per batch")
