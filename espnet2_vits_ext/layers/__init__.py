"""Building blocks shared by the paper's boxes: attention, convolution stacks, flows' splines, masks."""
