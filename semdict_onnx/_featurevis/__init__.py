"""Feature visualization on ONNX Runtime alone: pictures that excite a layer's channels.

Lucid's recipe, reimplemented without TensorFlow: the backward pass of the model's own
graph is generated as ONNX (_vjp.py, _backward.py, _gradient_model.py), the picture is a
Fourier-space image in a decorrelated colour space (_parameterization.py) seen through
random transforms with exact adjoints (_transforms.py), optimized with Adam (_optimizer.py).
`visualize` renders one channel, neuron group or direction; `render_spritemap` renders a
layer's channels (or a basis's directions) into a Spritemap the dictionary page shows.
"""
