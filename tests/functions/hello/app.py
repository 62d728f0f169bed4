def handler(event, context):
    print(f"hello from {context.function_name}")
    return {"hello": event.get("name", "world")}
