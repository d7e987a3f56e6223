"""Training and evaluating the bundled reference model (``python -m har train-reference``).

The reference model has the user's architecture (:mod:`har.training.architecture`)
and preprocessing, trained on the public watch data set (:mod:`har.training.data`):

1. every recording is cut into windows by the shared
   :class:`har.domain.preprocessing.Preprocessor` (window, hop and rate from the card), in
   canonical units (m/s², deg/s);
2. the scaler (per-channel mean and standard deviation over the training windows'
   samples) goes into the card, and the model input is ``Preprocessor.scale`` of
   the windows, the same call serving makes (:mod:`har.training.fit`);
3. at training time only, in canonical units before scaling, each window is
   mirrored to the other arm with probability 1/2, randomly rotated by a small
   angle (the same rotation for the accelerometer and gyroscope vectors, as if the
   watch sat slightly differently on the wrist) and its magnitude scaled by a few
   percent (:mod:`har.training.augmentation`);
4. evaluation is leave-subjects-out: 5 folds, each testing on 2 subjects the fold's
   model, scaler and training never saw (:mod:`har.training.evaluate`). The fold
   that tests on :data:`har.training.data.HELDOUT_SUBJECTS` is also the published
   model: its two test subjects are the held-out fixture and the demo data's source
   (:mod:`har.training.artifacts`, :mod:`har.training.demo_data`).

:func:`har.training.pipeline.train_reference` runs the stages in order. The
figures these runs gave are in models/README.md. Submodules are imported on
demand (``import har.training`` loads neither TensorFlow nor the data set).
"""
