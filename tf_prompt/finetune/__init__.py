"""Fine-tuning: supervised data rendered with the prompts the pipeline sends at inference
(data.py, `tf-prompt finetune-data`), and the jobs that tune a model on it (cli.py,
`tf-prompt finetune --provider ...`; openai_job.py for OpenAI)."""
