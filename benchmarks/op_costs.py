"""Time each op of the baseline's training step alone (CPU ms per batch): where the time goes.

    python benchmarks/op_costs.py [BATCH]        # TF_ENABLE_ONEDNN_OPTS=0 for Eigen kernels
"""
import os, time, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf
B = int(sys.argv[1]) if len(sys.argv) > 1 else 64
r = tf.random.normal
x1 = r((B, 32, 32, 3)); k1 = r((3, 3, 3, 32)); g1 = r((B, 30, 30, 32))
x2 = r((B, 15, 15, 32)); k2 = r((3, 3, 32, 64)); g2 = r((B, 13, 13, 64))
a1 = tf.nn.relu(r((B, 30, 30, 32))); a2 = tf.nn.relu(r((B, 13, 13, 64)))
d = r((B, 2304)); w = r((2304, 128)); gd = r((B, 128))
ops = {
 "conv1 fwd": lambda: tf.nn.conv2d(x1, k1, 1, "VALID"),
 "conv1 dW": lambda: tf.raw_ops.Conv2DBackpropFilter(input=x1, filter_sizes=[3,3,3,32], out_backprop=g1, strides=[1,1,1,1], padding="VALID"),
 "conv2 fwd": lambda: tf.nn.conv2d(x2, k2, 1, "VALID"),
 "conv2 dW": lambda: tf.raw_ops.Conv2DBackpropFilter(input=x2, filter_sizes=[3,3,32,64], out_backprop=g2, strides=[1,1,1,1], padding="VALID"),
 "conv2 dX": lambda: tf.raw_ops.Conv2DBackpropInput(input_sizes=[B,15,15,32], filter=k2, out_backprop=g2, strides=[1,1,1,1], padding="VALID"),
 "pool1 fwd+bwd": lambda: tf.raw_ops.MaxPoolGrad(orig_input=a1, orig_output=tf.nn.max_pool2d(a1, 2, 2, "VALID"), grad=tf.nn.max_pool2d(a1, 2, 2, "VALID"), ksize=[1,2,2,1], strides=[1,2,2,1], padding="VALID"),
 "pool2 fwd+bwd": lambda: tf.raw_ops.MaxPoolGrad(orig_input=a2, orig_output=tf.nn.max_pool2d(a2, 2, 2, "VALID"), grad=tf.nn.max_pool2d(a2, 2, 2, "VALID"), ksize=[1,2,2,1], strides=[1,2,2,1], padding="VALID"),
 "dense1 fwd+dW+dX": lambda: (d @ w, tf.transpose(d) @ gd, gd @ tf.transpose(w)),
 "relu1 grad": lambda: tf.raw_ops.ReluGrad(gradients=g1, features=a1),
 "dropout1 rng": lambda: tf.random.stateless_uniform((B, 15, 15, 32), seed=[1, 2]),
}
tot = 0
for name, f in ops.items():
    tf_f = tf.function(f)
    tf_f()
    t = time.perf_counter(); c = os.times()
    for _ in range(100): tf_f()
    dt = (time.perf_counter() - t) / 100; c2 = os.times()
    cpu = ((c2.user - c.user) + (c2.system - c.system)) / 100
    tot += cpu
    print(f"{name:18s} {dt*1e3:7.2f} ms wall  {cpu*1e3:7.2f} ms cpu per batch of {B}")
print(f"sum cpu {tot*1e3:.1f} ms per batch = {tot/B*1e3:.3f} ms/img")
