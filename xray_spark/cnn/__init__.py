"""The paper's CNN: AlexNet-style multi-label network (``model``), its Petastorm -> tf.data feed
(``data``), and Horovod training on Spark (``train``, the ``train_cnn`` job). Batch inference is
the model-agnostic ``xray_spark.labelling.scoring`` job over the ``xray_spark.modeldir`` protocol."""
