"""TransferLab's ML engine: a library with no Django, Celery or database in it.

Import submodules directly. ``errors`` and ``config`` never import TensorFlow, so the web
processes can validate experiment configs cheaply; everything else loads Keras.
"""
