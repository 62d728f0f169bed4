let count = 0;
exports.handler = async (event, context) => {
  count += 1;
  console.log("node says hi");
  if (event.fail) throw new TypeError("node failure");
  return { runtime: "cjs", count, requestId: context.awsRequestId,
           functionName: context.functionName, memory: context.memoryLimitInMB,
           remaining: context.getRemainingTimeInMillis(), event };
};
exports.callback = (event, context, callback) => {
  callback(null, { style: "callback", value: event.value });
};
