"""The NER methods (direct, translate-test, transfusion, one-call) and the steps each declares."""
