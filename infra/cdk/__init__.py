"""The AWS CDK app of ar-backend: one stack per stage (dev, prod) around chalice's CDK construct."""
