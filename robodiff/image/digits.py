"""The digit classes of the image experiments (scikit-learn's digits): their words and count; no torch, so the
command line can offer them as choices."""

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
NUM_CLASSES = len(DIGIT_WORDS)
