-- measure_survey_responses: per school and year, satisfied answers (很满意 + 满意) and rated
-- answers (every answer but 无法评估) by respondent type and, for students, by item, so a
-- satisfaction share is satisfied / rated at any grain.
-- Output grain: one row per (year, school_code, measure_id).
with survey_responses as (
    select
        *,
        answer in ('很满意', '满意') as is_satisfied,
        answer <> '无法评估' as is_rated
    from curated_survey_responses
),

per_school as (
    select
        year,
        school_code,
        count(distinct respondent_id)::double as survey_respondent_count,
        count(*) filter (where respondent_type = '在校生' and is_satisfied)::double
            as student_satisfied_answer_count,
        count(*) filter (where respondent_type = '在校生' and is_rated)::double
            as student_rated_answer_count,
        count(*) filter (
            where respondent_type = '在校生' and survey_item = '课堂育人' and is_satisfied
        )::double as student_classroom_satisfied_answer_count,
        count(*) filter (
            where respondent_type = '在校生' and survey_item = '课堂育人' and is_rated
        )::double as student_classroom_rated_answer_count,
        count(*) filter (
            where respondent_type = '在校生' and survey_item = '课外育人' and is_satisfied
        )::double as student_extracurricular_satisfied_answer_count,
        count(*) filter (
            where respondent_type = '在校生' and survey_item = '课外育人' and is_rated
        )::double as student_extracurricular_rated_answer_count,
        count(*) filter (
            where respondent_type = '在校生' and survey_item = '管理服务' and is_satisfied
        )::double as student_management_satisfied_answer_count,
        count(*) filter (
            where respondent_type = '在校生' and survey_item = '管理服务' and is_rated
        )::double as student_management_rated_answer_count,
        count(*) filter (where respondent_type = '毕业生' and is_satisfied)::double
            as graduate_satisfied_answer_count,
        count(*) filter (where respondent_type = '毕业生' and is_rated)::double
            as graduate_rated_answer_count,
        count(*) filter (where respondent_type = '家长' and is_satisfied)::double
            as parent_satisfied_answer_count,
        count(*) filter (where respondent_type = '家长' and is_rated)::double
            as parent_rated_answer_count,
        count(*) filter (where respondent_type = '用人单位' and is_satisfied)::double
            as employer_satisfied_answer_count,
        count(*) filter (where respondent_type = '用人单位' and is_rated)::double
            as employer_rated_answer_count,
        count(*) filter (where respondent_type = '教师' and is_satisfied)::double
            as teacher_satisfied_answer_count,
        count(*) filter (where respondent_type = '教师' and is_rated)::double
            as teacher_rated_answer_count
    from survey_responses
    group by year, school_code
),

final as (
    unpivot per_school
    on columns(* exclude (year, school_code))
    into name measure_id value measure_value
)

select year, school_code, null::varchar as city_name, measure_id, measure_value from final
