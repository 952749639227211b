"""The benchmarks' no-op model container: answers "0" for every input, so what is measured is
the container round trip (Skiff -> ZeroMQ -> Python -> back), not a model."""
from skiff.container import serve

serve(lambda batch: ["0"] * len(batch), input_type="floats")
